"""wardgate's data path: listeners, protocol handling, identity, policy, masking, vault."""
