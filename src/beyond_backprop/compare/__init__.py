"""``bbp compare``: every rule of a suite side by side (accuracy, speed, memory)."""
