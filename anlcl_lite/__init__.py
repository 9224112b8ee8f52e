"""ANLCL-lite: a light generator trained without clean ground truth (asymmetric non-local contrastive learning).

Built by the ANLCL-lite issue; nothing here yet.
"""
