"""lightly_matrix's MMDetection configs, installed as the package ``lightly_matrix.mmdet_configs``.

Not Python modules to import: mmengine reads them with ``Config.fromfile``. List them with
``lightly-matrix configs``; :func:`lightly_matrix.transfer.configs.config_dir` finds them.
"""
