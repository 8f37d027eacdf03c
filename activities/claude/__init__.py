"""The Claude backend: an agent loop over the Messages API with workspace-confined tools."""
