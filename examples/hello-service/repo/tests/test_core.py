import unittest

from greeter import greet


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self) -> None:
        self.assertEqual(greet("Ada"), "Hello, Ada!")

    def test_rejects_empty_name(self) -> None:
        with self.assertRaises(ValueError):
            greet("  ")


if __name__ == "__main__":
    unittest.main()
