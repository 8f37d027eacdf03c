from wordcount.counter import count_words

__all__ = ["count_words"]
