# The two commands of the README.  Both install what they need into .venv/ first.
.PHONY: book test setup clean

setup:
	@bash .ci/setup

## book: execute every notebook at the smoke profile, then build _build/html
book: setup
	.venv/bin/python tools/build_book.py --profile smoke

## test: unit tests, then the notebook tier (the book's recorded metrics, or papermill at smoke)
test: setup
	.venv/bin/python -m pytest

clean:
	rm -rf _build
