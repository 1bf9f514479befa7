"""The node's web pages: the member privacy centre, the staff compliance console and operator dashboard,
the offline API docs and the landing page, served beside the API by ``alliance-node serve``. Pages call
the same services as the API, with sessions, CSRF tokens and a strict Content-Security-Policy."""
