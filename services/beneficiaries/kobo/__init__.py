"""KoboToolbox intake: pull a form's submissions incrementally and register them through the import path."""
