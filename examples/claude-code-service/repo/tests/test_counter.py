import unittest

from wordcount import count_words


class CountWordsTest(unittest.TestCase):
    def test_counts_lowercase_words(self) -> None:
        self.assertEqual(count_words("The cat and the hat"), {"the": 2, "cat": 1, "and": 1, "hat": 1})

    def test_empty_text(self) -> None:
        self.assertEqual(count_words(""), {})


if __name__ == "__main__":
    unittest.main()
