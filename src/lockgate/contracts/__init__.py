"""The role contracts and the records that cross the plugin boundary.

The bottom layer: the kernel, the operations and every plugin build on it, and it imports
nothing of theirs. Each module is one part of the contract: :mod:`.source`,
:mod:`.content`, :mod:`.target` and :mod:`.state` are the roles; :mod:`.models`,
:mod:`.manifest`, :mod:`.refs`, :mod:`.clock`, :mod:`.locks` and :mod:`.audit` are what
crosses between them. Import from the module (this package re-exports nothing, to keep
start-up light); plugin authors import it all from :mod:`lockgate.plugin`.
"""
