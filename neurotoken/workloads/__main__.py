from neurotoken.workloads.preview import main

main()
