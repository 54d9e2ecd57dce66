"""A stand-in for Flask-WTF, put on the MLflow server's path by ``redblue stack up`` only when the
real package is not installed (MLflow's basic-auth app imports it for one thing: the CSRF token
of its browser sign-up form). It does not implement CSRF protection: it refuses that form
instead (403), so users are created by the admin through the REST API only. Installing
``mlflow[auth]`` (Flask-WTF) makes the stack use the real package and the form again.
"""
