"""Spam and bots on the public form: the verdict on each post, its signals, the spam folder."""
