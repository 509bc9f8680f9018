"""The web app: FastAPI factory, the routers of each domain, Jinja2 + HTMX pages, i18n."""
