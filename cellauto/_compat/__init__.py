"""Each dependency's private internals, in one small module per dependency.

cellauto reaches into a few of its dependencies' private attributes where no public
API does the job (asyncua's timers and address space, pyvisa-py's read buffer,
PyLabRobot's tip trackers, the asyncio event loop's scheduling). Every such access
lives in one module here:

* :mod:`.asyncua`, :mod:`.pyvisa_py`, :mod:`.pylabrobot`: the package is pinned
  exactly in ``pyproject.toml``; on any other installed version the module refuses to
  import (:class:`~._check.UntestedDependencyError`), naming the package, the
  installed and tested versions and what to do;
* :mod:`.asyncio`: Python is not pinned, so an untested Python version only warns
  (loudly); a missing internal refuses as above.

At import, each module also checks that every private attribute it uses is there.
Call sites elsewhere stay one-line calls to functions of these modules.
"""
