"""`t2v serve`: a local web page (gradio) that generates and extends videos with a loaded `TextToVideo`.

- inputs.py: the page's controls → a prompt and `GenerationOptions` (no gradio, no torch at import)
- stream.py: the streaming step: each decoded chunk becomes an `Update` (newest frames, counts) while the mp4 is
  written atomically beside it; pure functions of a pipeline, testable without a browser
- app.py: the gradio Blocks (tabs Generate and Extend) around a loaded pipeline, and its launch
- browser.py: a headless Chromium (playwright, the system's browser) driving a running `t2v serve` (tests, screenshot)
- screenshot.py: `python -m t2v.serve.screenshot`: docs/images/serve_generating.png, the page mid-generation
"""
