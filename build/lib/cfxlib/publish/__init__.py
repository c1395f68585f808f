"""The main job and its outputs: notebook steps, pipeline, pages, figures, rendering, snapshot."""
