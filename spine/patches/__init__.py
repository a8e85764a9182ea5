"""Data patches run by `bench migrate` (listed in patches.txt), oldest first."""
