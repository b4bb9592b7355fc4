"""msgen: a microservice platform's infrastructure as code from one typed blueprint."""

__version__ = "0.1.0"
