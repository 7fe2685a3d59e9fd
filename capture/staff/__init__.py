"""The staff side: accounts and tokens, sign-in and guards, the workspace pages and the exports over HTTP."""
