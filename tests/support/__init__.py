"""What the tests share (no tests here; test modules import from here, never from each other):

- builders: ``Builders`` (the ``make`` fixture), ``cast`` (the usual people, the ``cast``
  fixture), ``Flow`` (drives an instance over the API)
- flows: ``start`` and ``flow``, an instance of the credentialing process started over the API
- pages: the signed-in page client, the web ``World`` and ``advance`` through the engine
- security: the attack tests' world, page client and counters
- mail: a local SMTP server; scheduler: task and fixture-process helpers; workers: processes
- pki, hostile, bpmn: certificates, hostile inputs and files, BPMN reading helpers
- live, proxy, tools, databases: a live server with Chromium, a TCP proxy, external tools,
  the PostgreSQL address
"""
