"""Notices from the node to the researcher: AWS's spot interruption notice and rebalance
recommendation, as the node agent's spot watch reports them (hybrid_spawner/bootstrap/spot_watch.py).

:mod:`.notice` (pure: what a notice may say) and :mod:`.handlers` (``/hybrid/notices``, which
JupyterLab polls and shows as a sticky notification).
"""
