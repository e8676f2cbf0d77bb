"""Score: stored windows of events and a reference profile in, window results out."""
