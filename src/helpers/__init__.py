"""clv-lab helpers: customer-lifetime-value research, from transaction logs to reports.

Modules follow the data, and import only from the ones before them:
``data`` (load, validate) -> ``summary`` (RFM, calibration/holdout; with the
out-of-core engines ``summary_duckdb`` and ``summary_spark``) -> ``models``
(a package: the ``FrequencyModel`` base class and the generic fitter, one module
per model -- ``bgnbd``, ``mbgnbd``, ``pareto_nbd``, the ``gamma_gamma`` spend
model -- and the ``registry`` by name) -> ``value`` (predict, CLV, uncertainty), ``validation``,
``concentration`` -> ``segments``, ``economics``, ``revenue`` -> ``plots``
(and ``plots_*``); ``simulate`` and ``progress`` beside them; ``config``,
``engines``, ``report`` and ``run`` (CLI, papermill, HTML) on top.
"""

__version__ = "0.1.0"
