from neurotoken.provider.cli import main

main()
