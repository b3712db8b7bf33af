"""The call engine's mechanics: a call and its dependencies, ringing and bridging,
employee claims, the call details, kept audio files."""
