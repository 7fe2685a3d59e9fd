"""Measures that tell quality from quantity: the funnel report, ad spend and the sample data."""
