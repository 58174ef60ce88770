"""clv-lab helpers: customer-lifetime-value research, from transaction logs to reports.

Modules follow the data, and import only from the ones before them:
``data`` (load, validate) -> ``summary`` (RFM, calibration/holdout) ->
``models`` (fit, compare) -> ``value`` (predict, CLV, uncertainty) ->
``segments``, ``economics``, ``revenue`` -> ``plots``; ``simulate`` beside
them; ``config``, ``report`` and ``run`` (CLI, papermill, HTML) on top.
"""

__version__ = "0.1.0"
