"""nanbyo: domain services of the 難病・小慢データベース (no Flask-Admin imports here)."""
