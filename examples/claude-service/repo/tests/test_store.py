import unittest

from inventory import Store


class StoreTest(unittest.TestCase):
    def test_add_accumulates(self) -> None:
        store = Store()
        store.add("apple", 2)
        self.assertEqual(store.add("apple"), 3)

    def test_rejects_non_positive_quantities(self) -> None:
        with self.assertRaises(ValueError):
            Store().add("apple", 0)


if __name__ == "__main__":
    unittest.main()
