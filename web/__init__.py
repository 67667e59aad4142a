"""The site: server-rendered pages over the other apps' selectors and services (no app
imports web)."""
