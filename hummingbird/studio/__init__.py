"""The service behind the Gradio app: limits, request checks, models, jobs, output files and result texts.

``app.py`` builds the components and wires the events; everything it runs lives here, in plain Python that
raises :class:`hummingbird.studio.errors.StudioError` for anything a user can act on.
"""
