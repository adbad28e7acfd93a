"""wardgate's event-sourced core. Imports neither trio nor textual."""
