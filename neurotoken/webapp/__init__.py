"""The web app's Python side: its per-network configuration and a static file server.

The app itself (`web/`, TypeScript) has no server-side code: it is static files plus one
`config.json` (this package writes it) and talks to the chain only through the visitor's
wallet. `python -m neurotoken.webapp serve --network ethereum-local` serves `web/dist` with
the network's config; `python -m neurotoken.webapp config --network N --out DIR` writes the
config for any static host.
"""

from neurotoken.webapp.config import APP_CONTRACTS, WEB_DIR, app_config, config_for
from neurotoken.webapp.server import AppServer

__all__ = ["APP_CONTRACTS", "WEB_DIR", "AppServer", "app_config", "config_for"]
