// The market page (placeholder).
