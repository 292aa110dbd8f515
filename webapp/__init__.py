"""The BrainViz app's own code, beside ``app.py`` and ``pages/`` (the ``brainviz`` library holds no page
names, Markdown or Streamlit).

Streamlit-free (importable and unit-tested without a running app):

- :mod:`webapp.pages`      the page registry: script, sidebar label, icon, browser-tab title.
- :mod:`webapp.storefile`  where the store file is, its cache stamp, the process's one open Store.
- :mod:`webapp.messages`   the Markdown every page shows: data banner, missing / unreadable store.
- :mod:`webapp.viewmodel`  tables, maps and orders the pages draw (overview, ROIs, thumbnails, RDMs).
- :mod:`webapp.exports`    PNG and GIfTI bytes of a brain map, never raising.
- :mod:`webapp.charts`     the pages' 2-D charts and tables: tool-bar room, spaced ticks, percent format, heights.

Streamlit:

- :mod:`webapp.shell`      the page preamble (config, sidebar, store, banner), cached loaders, error display.
- :mod:`webapp.downloads`  the one PNG + GIfTI download widget of every brain map.
"""
