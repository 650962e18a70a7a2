"""The public host: the ``voila-publisher`` service (:mod:`.app`), its REST and page handlers
(:mod:`.handlers`), the versioned dashboard store (:mod:`.store`) and the supervised Voila
(:mod:`.voila_app`, :mod:`.voila_command`). Runs on its own machine; imports nothing from sync."""
