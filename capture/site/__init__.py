"""The MkDocs side of Leadgate: the ``leadgate`` plugin that turns ``content/`` into a site.

It renders a landing page with the download form for every resource, the catalog and tag
pages and the thank-you page, adds the page script, and keeps gated files out of the build.
"""
