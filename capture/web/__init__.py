"""The public side: the form post, thank-you and download pages, health checks, and the built site."""
