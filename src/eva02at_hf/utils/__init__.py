"""Support shared by training, data and the applications: crash-safe file writes and checks (`reliability`),
restricted unpickling (`safe_pickle`) and the activation-memory estimate (`memory`)."""
