from fseg.cli import main

main()
