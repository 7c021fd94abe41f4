"""Analysis of mixup-calibration results: the paper's tables and figures from Parquet results.

`load_results` reads a results directory into a tidy DataFrame (`read_results`: the chosen
rows and every epoch from one read), `aggregate` averages seeds,
`method_table` builds Tables 4/5 of Wang et al. (CVPR 2023) for one metric, `analysis.findings`
says whether the results support each of the paper's claims. Figures live in
`analysis.figures` (imports matplotlib), the paper's numbers in `analysis.paper`, and
`analysis report RESULTS_DIR` writes everything to one markdown report.
"""

from analysis.load import Results, ResultsError, aggregate, load_results, read_results
from analysis.tables import MethodTable, method_table, table1

__all__ = [
    "MethodTable",
    "Results",
    "ResultsError",
    "aggregate",
    "load_results",
    "method_table",
    "read_results",
    "table1",
]
