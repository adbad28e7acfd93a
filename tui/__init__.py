"""wardgate's operator console (Textual)."""
