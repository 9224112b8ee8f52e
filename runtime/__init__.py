"""The shared OpenCV runtime (Derainer over every backend, camera sources, derain-run, derain-bench).

Built by the runtime issue; nothing here yet.
"""
