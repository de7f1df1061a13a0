"""The browser view, ``facelandmarks serve``: the pipeline of ``run`` on its own thread
(:mod:`.live`), the people operations it runs there (:mod:`.actions`), the latest
annotated frame encoded once for every watcher (:mod:`.hub`), who may connect
(:mod:`.access`), the HTTP/WebSocket API (:mod:`.routes`), the command (:mod:`.main`)
and a static page (``static/``: no build step, no CDN).
"""
