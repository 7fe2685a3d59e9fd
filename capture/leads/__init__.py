"""Leads: the form's field contract, the one transaction a form post makes, the merge rule, queries, filters, attribution and exports."""
