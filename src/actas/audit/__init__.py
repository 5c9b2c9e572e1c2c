"""Audits of a log: cross-checks against witness copies, forensics, risk-limiting audits of the paper."""
