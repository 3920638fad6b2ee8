"""The services a :class:`~ezmsg_lab.Lab` is made of.

The Lab creates each one in ``__init__`` with the collaborators it needs (never the Lab
itself) and delegates its public methods to them: :class:`Session` (the control loop,
the timeout and whether the Lab is closed), :class:`PipelinesService` (``lab.launch``),
:class:`GraphInfo` (what the topology snapshot says about units and streams),
:class:`SettingsService` (``lab.set`` and forms), :class:`Views` (the DataFrame views),
:class:`TapsService` (``lab.tap``) and :class:`WidgetFactory` (``lab.graph``,
``lab.dashboard``). Feeds and stores notify through ``subscribe(fn) -> unsubscribe``
(:mod:`ezmsg_lab.model.listeners`).
"""
