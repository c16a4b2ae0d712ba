"""The credentialing domain's vocabulary (``vocabulary.py``): what the runtime knows of it."""
