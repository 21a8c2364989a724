"""Running a class on JupyterHub (``make hub``; README, "Running a class").

``environment`` makes the hub's Python environment, ``settings`` says where everything lives
(``HUB_*`` variables), ``state`` lays out the hub's folders (the served student bundle, nbgrader's
exchange, the servers' Jupyter config), and ``__main__`` is the command line
(``python -m tools.hub env|serve|nbgrader``). The hub's own configuration is in ``hub/``.
"""
