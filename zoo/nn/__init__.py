"""Network pieces the methods take as injected modules: image backbones (one home: ``backbones``), the
text and relation encoders, and retrieval (a FAISS index over a passage corpus).
"""
