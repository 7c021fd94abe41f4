"""Secrets are never written (docs/reliability.md "Secrets"): a study's files, Tune's pickles,
the bucket, stdout and Ray's logs hold no credential.

- A URI that carries credentials — a password in its user part (`s3://KEY:SECRET@bucket`,
  `postgresql://user:pass@host/db`) or a query option named like one (`secret_key=`,
  `session_token=`, `password=`, …) — is refused in one line that shows it with the secret
  part as `***`. Such a URI would be pickled with the filesystem or the spec into
  `tune/tuner.pkl` and the searcher's state, in the bucket, and printed in every line that
  names the storage. Credentials belong in the environment or a profile (for S3:
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE and ~/.aws/credentials), which
  pyarrow's filesystems read and never pickle.
- Ray Tune copies the AWS credentials of the driver's environment into every trial actor's
  `runtime_env`, which Ray's runtime-env agent logs: study.tune.ray_private
  (`keep_credentials_out_of_ray`) stops that.
"""

from __future__ import annotations

SECRET_WORDS = ("secret", "password", "passwd", "token", "key", "credential", "sig")
WHERE = (
    "set them in the environment or a profile instead (for S3: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials)"
)


def masked(uri: str) -> str | None:
    """`uri` with every secret part replaced by `***`, or None when it carries no secret: a
    password in the user part (`user:***@host`, the last `@` before the query, so a secret
    holding `/` is still found) or the value of a query option whose name holds one of
    SECRET_WORDS."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return None
    where, q, query = rest.partition("?")
    found = False
    if "@" in where:
        user, at, host = where.rpartition("@")
        name, colon, _ = user.partition(":")
        if colon:
            where, found = f"{name}:***{at}{host}", True
    options = []
    for option in query.split("&") if q else []:
        key, eq, value = option.partition("=")
        if eq and value and any(w in key.lower() for w in SECRET_WORDS):
            option, found = f"{key}=***", True
        options.append(option)
    return f"{scheme}://{where}{q}{'&'.join(options)}" if found else None


def refusal(uri: str, what: str) -> str | None:
    """The one-line refusal of a URI carrying credentials (`what` names it, e.g. "--storage"),
    with the secret masked; None when it carries none."""
    shown = masked(uri)
    if shown is None:
        return None
    return (
        f"{what} {shown}: credentials in a URI would be written into Tune's files, the "
        f"study's storage and its output; {WHERE}"
    )


def spec_refusal(url: str | None) -> str | None:
    """The refusal of an Optuna storage URL with a password (the loaded spec, URL expanded, is
    pickled by Tune into tune/); its database reads the password from elsewhere."""
    if url is None or masked(url) is None:
        return None
    return (
        f"search.storage {masked(url)}: a password in the URL would be written into Tune's "
        "files (the loaded spec is pickled in tune/); give it to the database client instead "
        "(PostgreSQL: PGPASSWORD or ~/.pgpass; MySQL: ?read_default_file=~/.my.cnf)"
    )
