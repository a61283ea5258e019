module example.com/cclaunch/sample

go 1.19
