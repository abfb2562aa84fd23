"""Custom Streamlit components (``st.components.v2``) of the rating app, each a Python wrapper beside its JS/CSS."""
