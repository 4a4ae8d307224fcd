"""Studies: experiments that train several models and answer a question with a report (``ramos study``)."""
