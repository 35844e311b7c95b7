"""SEAL's deployment use: a trained policy teaches a student new documents (seal-run adapt), and the student is asked (seal-run ask)."""
